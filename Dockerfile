# The gpo-action image, for a `uses: docker://IMAGE` step or a container job (README, "The Docker
# image"); action.yml itself is a composite action that installs the same pins without Docker.
# A slim Python with git, every dependency pinned (requirements-action.txt), then the package.
# No llama-cpp-python: in CI the Action calls the provider named in gpo.yaml (or serves the cache).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True

# git reads the pull request's base and head; the runner mounts the workspace owned by another
# user, so mark every directory safe (git would otherwise refuse it as "dubious ownership").
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory '*'

WORKDIR /opt/gpo-action
COPY requirements-action.txt ./
RUN pip install -r requirements-action.txt
COPY pyproject.toml README.md ./
COPY gpo_action ./gpo_action
RUN pip install --no-deps . && gpo-action --version

# GitHub runs the container with the workspace as its working directory.
ENTRYPOINT ["gpo-action"]
CMD ["action"]
