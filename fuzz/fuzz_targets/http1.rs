//! A client's bytes after the handshake of an HTTP/1.1 connection, through the proxy's
//! connection handling to an upstream on loopback.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proxy::fuzz::HttpHarness;

fuzz_target!(|data: &[u8]| {
    static HARNESS: OnceLock<HttpHarness> = OnceLock::new();
    HARNESS.get_or_init(HttpHarness::new).serve(data, false);
});
