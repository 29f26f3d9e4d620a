mod config_errors;
mod faults;
mod helpers;
mod http_surface;
mod reads;
mod schema;
