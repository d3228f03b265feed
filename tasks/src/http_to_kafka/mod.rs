mod config;
mod fetch;
mod operator;
mod route;

pub use config::*;
pub use operator::*;
