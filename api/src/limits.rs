//! Sizes of the event stream that readers size their own limits by.

/// The default `limits.event_bytes_max` of the controller (the largest event frame it
/// streams), and the default frame limit of the readers; a controller's `GET /health` tells
/// its own value as `eventBytesMax`.
pub const EVENT_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// The smallest `limits.event_bytes_max` a controller accepts: every agent event fits it.
pub const EVENT_BYTES_MIN: usize = 16 << 20;
