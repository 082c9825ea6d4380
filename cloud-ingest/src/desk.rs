//! The desks: the people who work the tickets. [`auth`] says who may do what; [`api`]
//! is the JSON API under `/api/v1`, calling the same ticket functions the pages will.

pub mod api;
pub mod auth;
