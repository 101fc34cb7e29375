//! UI tests of the `#[proxy]` DSL compiler (`proxy-macros`), run with trybuild.
//!
//! `tests/ui/fail/` holds one small program per compile-time check, each with the
//! `.stderr` a user should see; `tests/ui/pass/` holds declarations that use every
//! feature of the DSL and must compile and run. Refresh the snapshots with
//! `TRYBUILD=overwrite cargo test -p ui-tests`, then read every changed `.stderr`.
