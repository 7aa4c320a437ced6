/**
 * The one module that imports the Prometheus client library (prom-client): the metric modules
 * take its classes from here, so a change of library touches one file.
 * @module
 */

export { Counter, Gauge, Histogram, Registry } from "prom-client";
