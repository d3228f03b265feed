mod config;
mod generate;
mod operator;

pub use config::*;
pub use generate::Generator;
pub use operator::*;
