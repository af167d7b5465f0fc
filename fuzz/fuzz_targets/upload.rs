//! The upload parser: a multipart `Content-Type` (first line) and body (the rest), as
//! `POST /resource` reads them. Errors are `UploadError`s, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    static RT: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread().build().expect("runtime"),
    );
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let Ok(ctype) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let body = bytes::Bytes::copy_from_slice(data.get(split + 1..).unwrap_or_default());
    RT.with(|rt| {
        let parsed = rt
            .borrow()
            .block_on(jmessage_mock::server::parse_multipart_upload(
                ctype,
                body.clone(),
            ));
        if let Ok((bytes, _, _)) = parsed {
            assert!(
                bytes.len() <= body.len(),
                "a part is never larger than the body"
            );
        }
    });
});
