"""Component type names of the official ``otelcol-contrib`` distribution, pinned at 0.159.0.

Sources (read through the project's code-search tools, not downloaded at test time):

* Which modules are in the distribution: ``distributions/otelcol-contrib/manifest.yaml`` at tag
  ``v0.159.0`` of open-telemetry/opentelemetry-collector-releases (the builder manifest, 250 modules).
* The *type name* each module registers (what a config writes, e.g. ``file_storage`` for
  ``extension/storage/filestorage``): ``type:`` in each component's ``metadata.yaml``. Core
  components (``go.opentelemetry.io/collector/...``) were read at tag v0.159.0 of
  open-telemetry/opentelemetry-collector, which also lists the deprecated aliases kept after the
  renames (``otlp`` -> ``otlp_grpc``, ``otlphttp`` -> ``otlp_http``). Contrib types come from the
  contrib repository's generated ``reports/distributions/contrib.yaml`` (the list of types of the
  components whose metadata.yaml names the contrib distribution), reconciled module by module with
  the v0.159.0 manifest; the few modules the report did not cover (``coralogix`` processor,
  ``sumologic`` and ``aws_iam_dbauth`` extensions, ``icmpcheckreceiver``) were read from their
  metadata.yaml. ``load_balancing`` replaced ``loadbalancing`` in 0.153.0 (the old name is a
  deprecated alias).

Every type used by collector-config/*.yaml was additionally checked against its own metadata.yaml
and config schema. When the pinned version moves, regenerate this list from the new manifest.
"""

from __future__ import annotations

OTELCOL_CONTRIB_VERSION = "0.159.0"

CORE: dict[str, frozenset[str]] = {
    "receiver": frozenset({"otlp", "nop"}),
    "processor": frozenset({"batch", "memory_limiter"}),
    "exporter": frozenset({"debug", "nop", "otlp_grpc", "otlp_http"}),
    "extension": frozenset({"zpages"}),
    "connector": frozenset({"forward"}),
}

CONTRIB: dict[str, frozenset[str]] = {
    "connector": frozenset("""
        count datadog exceptions failover grafanacloud otlp_json round_robin routing service_graph
        signal_to_metrics span_metrics sum""".split()),
    "exporter": frozenset("""
        alibabacloud_logservice awscloudwatchlogs awsemf awskinesis awss3 awsxray azure_blob
        azuredataexplorer azuremonitor bmc_helix cassandra clickhouse coralogix datadog dataset doris
        elasticsearch faro file google_cloud_storage googlecloud googlecloudpubsub
        googlemanagedprometheus honeycomb_marker influxdb kafka load_balancing logicmonitor logzio
        mezmo opensearch otelarrow prometheus prometheus_remote_write pulsar rabbitmq sentry signalfx
        splunk_hec stef sumologic syslog tencentcloud_logservice tinybird zipkin""".split()),
    "extension": frozenset("""
        ack asapclient aws_iam_dbauth aws_logs_encoding awscloudwatchmetricstreams_encoding awsproxy
        azure_auth azure_encoding basicauth bearertokenauth cgroup_runtime datadog db_storage
        docker_observer ecs_observer file_storage google_cloud_logentry_encoding googleclientauth
        headers_setter health_check host_observer http_forwarder jaeger_encoding jaegerremotesampling
        json_log_encoding k8s_leader_elector k8s_observer oauth2client oidc opamp otlp_encoding
        pebble_tail_storage pprof redis_storage sigv4auth skywalking_encoding sumologic text_encoding
        zipkin_encoding""".split()),
    "processor": frozenset("""
        attributes cardinality_guardian coralogix cumulativetodelta deltatocumulative deltatorate
        drain filter gen_ai_normalizer geoip groupbyattrs groupbytrace interval isolationforest
        k8s_attributes log_dedup metric_start_time metrics_transform metricsgeneration
        probabilistic_sampler redaction remotetap resource resource_detection schema span sumologic
        tail_sampling transform unroll""".split()),
    "receiver": frozenset("""
        active_directory_ds aerospike apache apache_spark aws_cloudwatch aws_lambda
        awscontainerinsightreceiver awsecscontainermetrics awsfirehose awss3 awsxray azure_blob
        azure_event_hub azure_monitor carbon chrony cisco_os cloud_foundry cloudflare collectd couchdb
        datadog docker_stats elasticsearch envoy_als expvar faro file_log file_stats flink_metrics
        fluent_forward github gitlab google_cloud_spanner googlecloudmonitoring googlecloudpubsub
        haproxy host_metrics http_check icmpcheckreceiver iis influxdb jaeger journald k8s_cluster
        k8s_events k8s_objects kafka kafka_metrics kubelet_stats libhoney loki macos_unified_logging
        memcached mongodb mongodb_atlas mysql named_pipe netflow nginx nsxt ntp oracledb otelarrow
        otlp_json_file podman_stats postgresql pprof prometheus prometheus_remote_write
        prometheus_simple pulsar purefa purefb rabbitmq receiver_creator redis riak saphana skywalking
        snmp snowflake solace splunk_enterprise splunk_hec sqlquery sqlserver ssh_check statsd stef
        syslog systemd tcp_check tcp_log tls_check udp_log vcenter wavefront webhook_event
        windows_event_log windows_service windowsperfcounters yang_grpc zipkin zookeeper""".split()),
}

# Old names that 0.159.0 still accepts with a deprecation warning; our configs must not use them.
DEPRECATED_ALIASES: dict[str, dict[str, str]] = {
    "exporter": {"otlp": "otlp_grpc", "otlphttp": "otlp_http", "loadbalancing": "load_balancing"},
}

COMPONENTS: dict[str, frozenset[str]] = {
    kind: CORE.get(kind, frozenset()) | CONTRIB.get(kind, frozenset())
    for kind in ("receiver", "processor", "exporter", "extension", "connector")
}

# Number of component modules in the v0.159.0 builder manifest per kind (core + contrib), kept to
# notice an incomplete edit of the lists above. The manifest also has the OBI eBPF receiver
# (go.opentelemetry.io/obi, Linux only), which is not counted or listed here.
MANIFEST_MODULE_COUNTS = {"connector": 13, "exporter": 49, "extension": 40, "processor": 32, "receiver": 107}
