mod config;
mod operator;

pub use config::*;
pub use operator::*;
