#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/retail-fr");
    harness::policy(&shipped, data)
});
