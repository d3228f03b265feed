mod config;
mod operator;
mod read;

pub(crate) use config::*;
pub(crate) use operator::*;
