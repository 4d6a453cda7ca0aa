# Floodgate in a container. There is no npm in the image, so name the upstream registry:
#   docker build -t floodgate .
#   docker run -p 4873:4873 -e FLOODGATE_UPSTREAM=<registry URL> -v floodgate-cache:/var/cache/floodgate floodgate
# Behind a reverse proxy, also set FLOODGATE_PUBLIC_URL to the URL clients use.
# The build reads no index address from here: pip uses its default index, or the one given with
# --build-arg PIP_INDEX_URL=... (and PIP_EXTRA_INDEX_URL, PIP_CERT). Build arguments stay in the
# build stage; the final image does not record them.

FROM python:3.11-slim AS build
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# Floodgate and its dependencies go into a virtual environment the final stage copies whole:
# no wheels, pip or build tools are left behind in the image's layers.
RUN python -m venv --without-pip /opt/floodgate && pip install hatchling
WORKDIR /src
# Dependencies first, in their own layer, read from pyproject.toml alone: edits to the code,
# the policies or the README do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip --python /opt/floodgate/bin/python install -r requirements.txt
# Then Floodgate itself, as a wheel (the shipped policies go in as proxy/_policies), built
# without network access by the hatchling installed above; the build fails if the installed
# package (-I: not the source tree in /src) lacks a shipped policy.
COPY README.md ./
COPY proxy ./proxy
COPY policies ./policies
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheel . \
    && pip --python /opt/floodgate/bin/python install --no-deps /tmp/wheel/floodgate-*.whl \
    && pip --python /opt/floodgate/bin/python check \
    && /opt/floodgate/bin/python -I -c "from proxy.policy.holder import SHIPPED, shipped_policy; \
assert all(shipped_policy(n).parent.name == '_policies' for n in SHIPPED), 'policies not in the wheel'"

FROM python:3.11-slim
ARG UID=10001
# A fixed numeric user, so `runAsNonRoot` checks can see it is not root. The cache folder belongs
# to it and to group 0 (g=u), so it also works when the image is run with another UID and GID 0.
RUN useradd --uid ${UID} --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin floodgate \
    && mkdir -p /var/cache/floodgate \
    && chown ${UID}:0 /var/cache/floodgate && chmod 0770 /var/cache/floodgate
COPY --from=build /opt/floodgate /opt/floodgate
ENV PATH=/opt/floodgate/bin:$PATH \
    FLOODGATE_HOST=0.0.0.0 \
    FLOODGATE_PORT=4873 \
    FLOODGATE_CACHE_DIR=/var/cache/floodgate \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/var/cache/floodgate"]
EXPOSE 4873
USER ${UID}
# Healthy means ready to install through: /-/ready answers 503 while the upstream cannot be reached
# (cached packages are still served meanwhile). /-/ping is the cheap liveness check.
# It asks the port Floodgate listens on: change the port with FLOODGATE_PORT, not --port.
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/-/ready' % os.environ.get('FLOODGATE_PORT', '4873'), timeout=5)"
ENTRYPOINT ["floodgate"]
CMD ["serve"]
