//! The simulated hardware and fleet.
//!
//! - [`peripherals`]: a fuel-gauge chip answering I2C, so the agent's real driver reads it.
//! - [`physics`]: battery fade, resistance, voltage sag; [`device`] adds heat, usage,
//!   firmware behaviour, storage wear, connectivity and the device's fate, as the
//!   agent's `Host`.
//! - [`fleet`]: SKUs, batches, firmware releases and ground truth, from one seed.
//! - [`offline`] and [`dataset`]: the `generate` mode; [`live`]: the `run` mode over
//!   MQTT with a [`clock::ScaledClock`].
//!
//! The model and its parameters are described in `docs/simulation.md`.

pub mod clock;
pub mod dataset;
pub mod device;
pub mod fleet;
pub mod live;
pub mod offline;
pub mod peripherals;
pub mod physics;
