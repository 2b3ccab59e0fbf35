//! The black-box tests of the `tenet` binary, one module per concern and
//! all in one test binary: a test binary links the whole dependency tree,
//! so one binary per file paid that link once per file on every change.
//! `cargo test --test black_box access::` runs one concern.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod access;
mod analytics;
mod audit;
mod automations;
mod console;
mod contract;
mod conventions;
mod deliveries;
mod feed;
mod identity;
mod isolation;
mod patch;
mod platform;
mod replay;
mod service;
mod slice;
mod tasks;
mod templates;
mod webhooks;
mod ws;
