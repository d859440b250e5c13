//! Certificate material as operators paste it: any bytes through the parser every command
//! and the store use (PEM, DER, PKCS#12, PKCS#7), then through `inspect`'s chain verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzzed.pem");
    if let Ok(bundle) = certstore::parse_any(path, data, Some("s3cret")) {
        let _ = certstore::inspect(&bundle, certstore::Timestamp::now());
    }
});
