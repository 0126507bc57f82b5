# Kafka (MSK): TLS between clients and brokers and between brokers,
# encrypted at rest with the platform key. Clients authenticate with IAM
# (SASL AWS_MSK_IAM over TLS, bootstrap_brokers_sasl_iam, port 9098): the
# tasks sign in with their task role (iam.tf grants it the cluster, the
# topics and the consumer groups), so there is no Kafka password to keep.
# The service is told so in ecs.tf (Kafka__Security__*).

resource "aws_cloudwatch_log_group" "kafka" {
  name              = "/msk/${var.name_prefix}"
  retention_in_days = var.log_retention_days
}

resource "aws_msk_configuration" "kafka" {
  name              = "${var.name_prefix}-kafka"
  kafka_versions    = [var.kafka_version]
  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=3
    min.insync.replicas=2
    num.partitions=12
    unclean.leader.election.enable=false
  PROPERTIES

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_msk_cluster" "kafka" {
  cluster_name           = "${var.name_prefix}-kafka"
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.kafka_broker_count

  broker_node_group_info {
    instance_type   = var.kafka_instance_type
    client_subnets  = slice(var.private_subnet_ids, 0, 3)
    security_groups = [aws_security_group.kafka.id]

    storage_info {
      ebs_storage_info {
        volume_size = var.kafka_volume_size
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.kafka.arn
    revision = aws_msk_configuration.kafka.latest_revision
  }

  client_authentication {
    unauthenticated = false

    sasl {
      iam = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.platform.arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.kafka.name
      }
    }
  }
}
