//! The desks: the people who work the tickets. [`auth`] says who may do what; [`api`]
//! is the JSON API under `/api/v1` and [`pages`] the desk's pages, both calling
//! [`casework`]; [`progress`] is the customer's page, opened by a link. [`device`] is a device's
//! page; [`trend`] sums a device's last days and [`charts`] draws them. The recycling
//! desk's casework is [`recycling`], its pages [`recycling_pages`]. [`fleet`] is the analysts'
//! API: cohorts, flags, campaigns; [`fleet_pages`] its pages. [`reports`] serves the
//! after-sales review and root-cause records; [`report_pages`] their pages. [`models`] is
//! the model registry's API (champion, challenger, gate, promotion, rollback);
//! [`model_pages`] its page.

pub mod api;
pub mod auth;
pub mod casework;
pub mod charts;
pub mod device;
pub mod fleet;
pub mod fleet_pages;
pub mod model_pages;
pub mod models;
pub mod pages;
pub mod progress;
pub mod recycling;
pub mod recycling_pages;
pub mod report_pages;
pub mod reports;
pub mod trend;

/// The desk's whole router: the API under `/api/v1` and the pages.
pub fn router(state: api::DeskState) -> axum::Router {
    api::router(state.clone())
        .merge(pages::router(state.clone()))
        .merge(device::router(state.clone()))
        .merge(recycling_pages::router(state.clone()))
        .merge(fleet_pages::router(state.clone()))
        .merge(report_pages::router(state.clone()))
        .merge(model_pages::router(state.clone()))
        .merge(progress::router(state))
}
