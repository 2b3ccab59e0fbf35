//! The migrations are embedded at compile time (`sqlx::migrate!`): rebuild
//! this crate when one is added or changed, or a binary could start with an
//! older set than the repository holds.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
