mod config;
mod operator;
mod read;

pub use config::*;
pub use operator::*;
