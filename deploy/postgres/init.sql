-- One database per service instance: services never share tables.
CREATE DATABASE identity;
CREATE DATABASE records;
CREATE DATABASE billing;
CREATE DATABASE sealer;
CREATE DATABASE "validator-1";
CREATE DATABASE "validator-2";
CREATE DATABASE "validator-3";
