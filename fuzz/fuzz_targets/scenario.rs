//! The scenario loader: `scenario::parse` of arbitrary YAML text. Errors are
//! diagnostics with a position, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(diags) = jmessage_mock::scenario::parse(text, "fuzz.yaml") {
        assert!(!diags.is_empty(), "a failed parse says why");
    }
});
