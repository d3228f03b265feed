mod aggregate;
mod config;
mod metrics;
mod operator;
mod process;
mod source;
mod start_guard;
mod window;

pub use config::*;
pub use operator::*;
