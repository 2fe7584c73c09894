# syntax=docker/dockerfile:1
# MLflow's image with the two drivers deploy/compose.yaml's server needs:
# psycopg2 (PostgreSQL, the runs) and boto3 (MinIO, the artifacts). The
# version is the one the tests run against (Tests/services/requirements.txt).
FROM ghcr.io/mlflow/mlflow:v3.17.2
RUN pip install --no-cache-dir psycopg2-binary==2.9.13 boto3==1.44.5
