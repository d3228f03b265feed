mod config;
mod operator;

pub(crate) use config::*;
pub(crate) use operator::*;
