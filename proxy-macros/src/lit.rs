//! Errors inside string literals: point at the offending characters when the compiler
//! allows it (a sub-span of the literal), and always show the string with a caret under
//! them in the message.

use proxy_syntax::SyntaxError;
use syn::LitStr;

use crate::ctxt::Ctxt;

/// Report `e`, found in the value of `lit`.
pub fn error_in_lit(cx: &Ctxt, lit: &LitStr, e: &SyntaxError, what: &str) {
    cx.push(lit_error(lit, e, what));
}

/// The error for `e`, found in the value of `lit` (to combine with notes).
pub fn lit_error(lit: &LitStr, e: &SyntaxError, what: &str) -> syn::Error {
    let value = lit.value();
    // +1 for the opening quote; only exact for literals without escapes, so only
    // used when the source text equals the quoted value.
    let token = lit.token();
    let source = token.to_string();
    let span = if source == format!("{value:?}") || source == format!("\"{value}\"") {
        token
            .subspan(1 + e.offset..1 + e.offset + e.len)
            .unwrap_or_else(|| lit.span())
    } else {
        lit.span()
    };
    let mut msg = format!("{what}: {}\n{}", e.message, indent(&e.caret(&value)));
    if let Some(h) = &e.hint {
        msg.push_str(&format!("\nhelp: {h}"));
    }
    syn::Error::new(span, msg)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
