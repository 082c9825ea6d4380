//! The device-side agent: hardware through embedded-hal, reboot log, sampling, spool, MQTT session, commands.
//!
//! Not built yet: this crate is reserved in the workspace layout of DESIGN.md and is
//! filled in by its own issue.
