//! The streaming data-set scanner the gateway runs over every received instance: any
//! bytes, in any of the encodings it supports, give a header or an error.

#![no_main]

use dimse::scan::{Encoding, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let encoding = match choice % 4 {
        0 => Encoding::ExplicitLittle,
        1 => Encoding::ImplicitLittle,
        2 => Encoding::ExplicitBig,
        _ => Encoding::DeflatedExplicitLittle,
    };
    let _ = scan(bytes, encoding);
});
