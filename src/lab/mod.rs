//! The lab: a ruleset's VPC as network namespaces on one box (see `vpcgate lab`).
