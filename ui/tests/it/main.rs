//! The web UI's router tests, in one binary: oneshot requests against an in-memory
//! `Backend` (`support`), one module per area.

mod support;

mod api;
mod auth;
mod backfills;
mod pages;
mod roles;
mod streams;
