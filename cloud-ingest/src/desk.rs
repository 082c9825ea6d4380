//! The desks: the people who work the tickets. [`auth`] says who may do what; [`api`]
//! is the JSON API under `/api/v1`, calling the same ticket functions the pages will.

pub mod api;
pub mod auth;
pub mod casework;
pub mod pages;

/// The desk's whole router: the API under `/api/v1` and the pages.
pub fn router(state: api::DeskState) -> axum::Router {
    api::router(state.clone()).merge(pages::router(state))
}
