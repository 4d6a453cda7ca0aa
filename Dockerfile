# Floodgate in a container. There is no npm in the image, so name the upstream registry:
#   docker build -t floodgate .
#   docker run -p 4873:4873 -e FLOODGATE_UPSTREAM=<registry URL> -v floodgate-cache:/var/cache/floodgate floodgate
# Behind a reverse proxy, also set FLOODGATE_PUBLIC_URL to the URL clients use.

FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build
# Dependencies first, in their own layer, so source edits do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir proxy policies && echo '__version__ = "0.0.0"' > proxy/__init__.py \
    && pip wheel --no-cache-dir --wheel-dir /wheels . && rm /wheels/floodgate-*.whl
COPY proxy ./proxy
COPY policies ./policies
RUN python -m build --wheel --outdir /wheels .

FROM python:3.11-slim
ARG UID=10001
RUN useradd --uid ${UID} --no-create-home --shell /usr/sbin/nologin floodgate \
    && mkdir -p /var/cache/floodgate && chown ${UID} /var/cache/floodgate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels floodgate && rm -rf /wheels
ENV FLOODGATE_HOST=0.0.0.0 \
    FLOODGATE_PORT=4873 \
    FLOODGATE_CACHE_DIR=/var/cache/floodgate \
    PYTHONUNBUFFERED=1
VOLUME ["/var/cache/floodgate"]
EXPOSE 4873
USER ${UID}
# Healthy means ready to install through: /-/ready answers 503 while the upstream cannot be reached
# (cached packages are still served meanwhile). /-/ping is the cheap liveness check.
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4873/-/ready', timeout=5)"
ENTRYPOINT ["floodgate"]
CMD ["serve"]
