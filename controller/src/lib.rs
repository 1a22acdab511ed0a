//! The Ordo controller: journal-backed state, agent links, commands and the event stream.
