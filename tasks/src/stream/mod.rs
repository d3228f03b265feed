mod aggregate;
mod config;
mod operator;
mod process;
mod source;
mod window;

pub use config::*;
pub use operator::*;
