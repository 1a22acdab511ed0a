//! The controller's journal records: the published types of [`ordo_api::record`].

pub use ordo_api::record::*;
