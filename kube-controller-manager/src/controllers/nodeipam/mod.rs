pub mod cidrset;
