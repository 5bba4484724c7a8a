//! Every integer constant of the libcurl headers (extracted by build.rs).

include!(concat!(env!("OUT_DIR"), "/constants.rs"));
