//! The Lua plumbing layer: argument reading, class registration, the raw
//! stack helpers and the scoped slot the call context lives in. No libcurl
//! here; `unsafe` is confined to `raw.rs`, `scoped.rs` and `export.rs`.

pub mod args;
pub mod class;
pub mod export;
pub mod raw;
pub mod scoped;

pub use args::{to_int, type_name, Args, Out, Usage};
pub use class::Handle;
pub use export::function;
