mod aggregate;
mod config;
mod operator;
mod process;
mod window;

pub use config::*;
pub use operator::*;
