# The seed's ECS cluster and service (§7.2.3) and their task definition.

resource "aws_ecs_cluster" "tracktrace_cluster" {
  name = "corporate-services-tracktrace"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "tracktrace_api" {
  name              = "/ecs/tracktrace-api"
  retention_in_days = var.log_retention_days
}

locals {
  container_name = "tracktrace-api"
  container_port = 8080

  # Settings as environment variables (Section__Key); the rest are
  # tracktrace's defaults, which match the seed's appsettings.json.
  container_environment = [
    { name = "ASPNETCORE_ENVIRONMENT", value = "Production" },
    # MSK with IAM authentication (msk.tf): TLS, SASL AWS_MSK_IAM, the
    # task role's credentials from the ECS credentials endpoint.
    { name = "Kafka__BootstrapServers", value = aws_msk_cluster.kafka.bootstrap_brokers_sasl_iam },
    { name = "Kafka__Security__TLS__Enabled", value = "true" },
    { name = "Kafka__Security__SASL__Mechanism", value = "AWS_MSK_IAM" },
    { name = "Authentication__Authority", value = var.authentication_authority },
    { name = "Authentication__Audience", value = var.authentication_audience },
    { name = "Monitoring__Metrics__Tags__service", value = "tracktrace-api" },
    { name = "Monitoring__Tracing__Enabled", value = var.tracing_endpoint != "" ? "true" : "false" },
    { name = "Monitoring__Tracing__Endpoint", value = var.tracing_endpoint },
    { name = "ReadModels__CacheSettings__MaxSize", value = "500MB" },
    { name = "GOMEMLIMIT", value = "${floor(var.task_memory * 0.9)}MiB" },
    # Session settings of tracktrace's own connections (libpq's PGOPTIONS,
    # which pgx reads): no statement runs longer than 5 min nor a
    # transaction idles over 60 s, and on PostgreSQL 17+ no transaction
    # lasts over 10 min (older servers refuse the parameter). A long
    # transaction holds the event log's followers back (README).
    { name = "PGOPTIONS", value = join(" ", concat(["-c statement_timeout=300s", "-c idle_in_transaction_session_timeout=60s"],
    tonumber(split(".", var.db_engine_version)[0]) >= 17 ? ["-c transaction_timeout=600s"] : [])) },
  ]
}

resource "aws_ecs_task_definition" "tracktrace_api" {
  family                   = "tracktrace-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name                   = local.container_name
      image                  = var.container_image
      essential              = true
      command                = ["serve"]
      user                   = "65532:65532"
      readonlyRootFilesystem = true
      stopTimeout            = 45

      portMappings = [
        { containerPort = local.container_port, hostPort = local.container_port, protocol = "tcp" },
      ]

      environment = local.container_environment

      secrets = [
        { name = "ConnectionStrings__EventStore", valueFrom = aws_secretsmanager_secret.eventstore_connection.arn },
        { name = "ConnectionStrings__Redis", valueFrom = aws_secretsmanager_secret.redis_connection.arn },
      ]

      healthCheck = {
        command     = ["CMD", "/tracktrace", "healthcheck"]
        interval    = 30
        timeout     = 5
        retries     = 3
        startPeriod = 15
      }

      linuxParameters = {
        capabilities = { drop = ["ALL"] }
      }

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.tracktrace_api.name
          awslogs-region        = var.aws_region
          awslogs-stream-prefix = "api"
        }
      }
    },
  ])
}

resource "aws_ecs_service" "tracktrace_api" {
  name            = "tracktrace-api"
  cluster         = aws_ecs_cluster.tracktrace_cluster.id
  task_definition = aws_ecs_task_definition.tracktrace_api.arn
  desired_count   = var.desired_count

  launch_type      = "FARGATE"
  platform_version = "LATEST"

  load_balancer {
    target_group_arn = aws_lb_target_group.tracktrace_api.arn
    container_name   = "tracktrace-api"
    container_port   = 8080
  }

  # The seed's deployment_configuration block, as provider v5 spells it
  # (top-level arguments).
  deployment_maximum_percent         = 200
  deployment_minimum_healthy_percent = 100

  # Blue/Green deployment
  deployment_controller {
    type = "CODE_DEPLOY"
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.service.id]
    assign_public_ip = false
  }

  health_check_grace_period_seconds = 60
  propagate_tags                    = "SERVICE"
  enable_ecs_managed_tags           = true

  lifecycle {
    # CodeDeploy owns the task definition and target group in use after the
    # first deployment; autoscaling owns the count.
    ignore_changes = [task_definition, load_balancer, desired_count]
  }

  depends_on = [aws_lb_listener.https, aws_lb_listener.test]
}

resource "aws_appautoscaling_target" "tracktrace_api" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.tracktrace_cluster.name}/${aws_ecs_service.tracktrace_api.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.desired_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "tracktrace_api_cpu" {
  name               = "tracktrace-api-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.tracktrace_api.service_namespace
  resource_id        = aws_appautoscaling_target.tracktrace_api.resource_id
  scalable_dimension = aws_appautoscaling_target.tracktrace_api.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = 70
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
