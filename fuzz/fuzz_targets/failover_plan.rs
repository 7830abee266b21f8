//! The failover plan is the one document an operator writes by hand: any bytes must load into a
//! checked plan or an error that names the field, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = failover::plan::load(data);
});
