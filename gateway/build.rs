//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds
//! schemas/gateway/* at compile time, and cargo does not see those files otherwise.

fn main() {
    println!("cargo:rerun-if-changed=../schemas/gateway/sqlite");
    println!("cargo:rerun-if-changed=../schemas/gateway/postgres");
}
