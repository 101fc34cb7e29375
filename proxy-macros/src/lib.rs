//! The DSL compiler for `proxy-runtime` (arrives with the DSL issue).
