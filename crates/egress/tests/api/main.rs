//! End-to-end tests: the real server on a loopback port, a fresh SQLite store and data dir per
//! test, driven over HTTP.

mod async_jobs;
mod bulk_edit;
mod cluster;
mod common;
mod emulators;
mod exports;
mod files;
mod filters;
mod imports;
mod leave;
mod openapi;
mod projects;
mod scroll;
mod security;
mod uploads;
mod volumes;
mod volumes_azure;
mod volumes_gcs;
mod wire;
