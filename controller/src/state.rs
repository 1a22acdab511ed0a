//! The controller's state, the fold of its journal: the published [`ordo_api::state`].

pub use ordo_api::state::*;
