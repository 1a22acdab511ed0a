//! The Ordo cockpit API: a stateless view of the controller's event stream.
