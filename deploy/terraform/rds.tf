# The seed's event store cluster (§7.2.3), kept as specified: Aurora
# PostgreSQL, database eventstore, user eventstore_user, password from a
# (sensitive) variable, 7 days of backups in 03:00-04:00, the three AZs,
# encrypted with aws_kms_key.eventstore. Added: networking, a parameter group
# (TLS only; idle_in_transaction_session_timeout, which tracktrace's
# projections rely on), two instances for multi-AZ failover, protection
# against deletion.

resource "aws_db_subnet_group" "eventstore" {
  name       = "${var.name_prefix}-eventstore"
  subnet_ids = var.private_subnet_ids
}

resource "aws_rds_cluster_parameter_group" "eventstore" {
  name        = "${var.name_prefix}-eventstore"
  family      = "aurora-postgresql${split(".", var.db_engine_version)[0]}"
  description = "tracktrace event store"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # The event log is read below the oldest transaction id on the whole
  # server, so one long transaction, in any session of any database, holds
  # every follower (projections, relay, subscriptions) back until it ends
  # (README, "Long transactions"). These bound every session's:
  #   - idle_in_transaction_session_timeout (PostgreSQL 9.6+): a session
  #     left idle inside a transaction is ended after 60 s;
  #   - transaction_timeout (PostgreSQL 17+ only; older engines reject the
  #     parameter): no transaction lasts more than 15 min. Sessions that
  #     need longer (a large index build, the conversion to the partitioned
  #     event store) run SET transaction_timeout = 0 first; pg_dump does.
  # statement_timeout is set for the application's sessions only
  # (PGOPTIONS in ecs.tf), not here: it would cut maintenance short.
  parameter {
    name  = "idle_in_transaction_session_timeout"
    value = "60000"
  }

  dynamic "parameter" {
    for_each = tonumber(split(".", var.db_engine_version)[0]) >= 17 ? ["transaction_timeout"] : []
    content {
      name  = "transaction_timeout"
      value = "900000"
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_rds_cluster" "eventstore" {
  cluster_identifier      = "tracktrace-eventstore"
  engine                  = "aurora-postgresql"
  engine_version          = var.db_engine_version
  database_name           = "eventstore"
  master_username         = "eventstore_user"
  master_password         = var.db_password
  backup_retention_period = 7
  preferred_backup_window = "03:00-04:00"

  # Multi-AZ for high availability
  availability_zones = var.availability_zones

  # Encryption at rest
  storage_encrypted = true
  kms_key_id        = aws_kms_key.eventstore.arn

  db_subnet_group_name            = aws_db_subnet_group.eventstore.name
  vpc_security_group_ids          = [aws_security_group.eventstore.id]
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.eventstore.name
  port                            = 5432

  preferred_maintenance_window    = "sun:05:00-sun:06:00"
  enabled_cloudwatch_logs_exports = ["postgresql"]
  copy_tags_to_snapshot           = true
  deletion_protection             = true
  skip_final_snapshot             = false
  final_snapshot_identifier       = "tracktrace-eventstore-final"

  lifecycle {
    # AWS may report the AZs in another order or add one; don't replace the
    # cluster over it.
    ignore_changes = [availability_zones]
  }
}

resource "aws_rds_cluster_instance" "eventstore" {
  count                           = var.db_instance_count
  identifier                      = "tracktrace-eventstore-${count.index + 1}"
  cluster_identifier              = aws_rds_cluster.eventstore.id
  engine                          = aws_rds_cluster.eventstore.engine
  engine_version                  = aws_rds_cluster.eventstore.engine_version
  instance_class                  = var.db_instance_class
  db_subnet_group_name            = aws_db_subnet_group.eventstore.name
  availability_zone               = element(var.availability_zones, count.index)
  publicly_accessible             = false
  auto_minor_version_upgrade      = true
  performance_insights_enabled    = true
  performance_insights_kms_key_id = aws_kms_key.eventstore.arn
}
