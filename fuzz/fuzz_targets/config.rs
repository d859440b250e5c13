//! Any text as the config file, through every check `gatehouse check` runs on it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        proxy::fuzz::config(text);
    }
});
