# Blue/green deployments of the ECS service (the seed's CODE_DEPLOY
# controller): a deployment registers a new task definition, CodeDeploy starts
# the green task set behind the test listener, shifts production traffic
# (canary: 10% for 5 minutes, then the rest), and rolls back on failure.

resource "aws_codedeploy_app" "tracktrace" {
  name             = "tracktrace-api"
  compute_platform = "ECS"
}

resource "aws_codedeploy_deployment_group" "tracktrace_api" {
  app_name               = aws_codedeploy_app.tracktrace.name
  deployment_group_name  = "tracktrace-api"
  deployment_config_name = "CodeDeployDefault.ECSCanary10Percent5Minutes"
  service_role_arn       = aws_iam_role.codedeploy.arn

  # Add an alarm_configuration (5xx rate, p99 latency) and the
  # DEPLOYMENT_STOP_ON_ALARM event once those alarms exist.
  auto_rollback_configuration {
    enabled = true
    events  = ["DEPLOYMENT_FAILURE"]
  }

  blue_green_deployment_config {
    deployment_ready_option {
      action_on_timeout = "CONTINUE_DEPLOYMENT"
    }

    terminate_blue_instances_on_deployment_success {
      action                           = "TERMINATE"
      termination_wait_time_in_minutes = 5
    }
  }

  deployment_style {
    deployment_option = "WITH_TRAFFIC_CONTROL"
    deployment_type   = "BLUE_GREEN"
  }

  ecs_service {
    cluster_name = aws_ecs_cluster.tracktrace_cluster.name
    service_name = aws_ecs_service.tracktrace_api.name
  }

  load_balancer_info {
    target_group_pair_info {
      prod_traffic_route {
        listener_arns = [aws_lb_listener.https.arn]
      }

      test_traffic_route {
        listener_arns = [aws_lb_listener.test.arn]
      }

      target_group {
        name = aws_lb_target_group.tracktrace_api.name
      }

      target_group {
        name = aws_lb_target_group.tracktrace_api_green.name
      }
    }
  }
}
