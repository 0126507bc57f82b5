data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# Task execution role: pulls the image, writes logs, reads the two secrets.
resource "aws_iam_role" "task_execution" {
  name               = "${var.name_prefix}-task-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "task_execution" {
  role       = aws_iam_role.task_execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "task_execution_secrets" {
  statement {
    sid     = "ReadConnectionStrings"
    actions = ["secretsmanager:GetSecretValue"]
    resources = [
      aws_secretsmanager_secret.eventstore_connection.arn,
      aws_secretsmanager_secret.redis_connection.arn,
    ]
  }

  statement {
    sid       = "DecryptConnectionStrings"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.platform.arn]
  }
}

resource "aws_iam_role_policy" "task_execution_secrets" {
  name   = "read-connection-strings"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution_secrets.json
}

# Task role: what the application itself may do. It calls no AWS API; it
# signs in to MSK with this role (AWS_MSK_IAM) and may use its topics and
# consumer groups: the relay produces (idempotently) to the domain and
# integration topics, creates them and their dead-letter topics when
# missing, and the projection consumer group reads the domain topic.
resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

locals {
  # MSK's IAM resources are named after the cluster's ARN
  # (arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID): topic/NAME/UUID/TOPIC,
  # group/NAME/UUID/GROUP.
  msk_topic_arn_prefix = replace(aws_msk_cluster.kafka.arn, ":cluster/", ":topic/")
  msk_group_arn_prefix = replace(aws_msk_cluster.kafka.arn, ":cluster/", ":group/")
}

data "aws_iam_policy_document" "task_kafka" {
  statement {
    sid       = "ConnectToKafka"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"]
    resources = [aws_msk_cluster.kafka.arn]
  }

  statement {
    sid = "UseTracktraceTopics"
    actions = [
      "kafka-cluster:CreateTopic",
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:ReadData",
      "kafka-cluster:WriteData",
    ]
    # Kafka.Topics.DomainEvents and its .dlq, Kafka.Topics.IntegrationEvents.
    resources = [
      "${local.msk_topic_arn_prefix}/corporate.tracktrace.*",
      "${local.msk_topic_arn_prefix}/corporate.integration.events",
    ]
  }

  statement {
    sid       = "UseTracktraceConsumerGroups"
    actions   = ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"]
    resources = ["${local.msk_group_arn_prefix}/tracktrace-*"]
  }
}

resource "aws_iam_role_policy" "task_kafka" {
  name   = "kafka-iam"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task_kafka.json
}

# CodeDeploy's service role for ECS blue/green.
data "aws_iam_policy_document" "codedeploy_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codedeploy.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "codedeploy" {
  name               = "${var.name_prefix}-codedeploy"
  assume_role_policy = data.aws_iam_policy_document.codedeploy_assume.json
}

resource "aws_iam_role_policy_attachment" "codedeploy" {
  role       = aws_iam_role.codedeploy.name
  policy_arn = "arn:aws:iam::aws:policy/AWSCodeDeployRoleForECS"
}
