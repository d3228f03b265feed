mod config;
mod generate;
mod operator;

pub(crate) use config::*;
pub(crate) use operator::*;
