mod config;
mod fetch;
mod operator;
mod route;

pub(crate) use config::*;
pub(crate) use operator::*;
