//! A stand-in for the `testcontainers` crate that zookeeper-client's integration suite
//! (`tests/zookeeper.rs`) is written against, built by `cargo xtask compat-clients` in the
//! suite's scratch copy (it is not part of the workspace).
//!
//! The suite depends on a git fork (kezhuw/testcontainers-rs, branch `zookeeper-client`:
//! testcontainers 0.12 plus docker health checks). Cargo drops git dependencies when it
//! publishes a crate, so the suite as published on crates.io names a crate it cannot get,
//! and no testcontainers release on crates.io has that API (`clients::Cli` together with
//! `Healthcheck`). This crate has the part of that API the suite uses, with the same
//! behaviour: it runs the `docker` CLI with the same commands and arguments (`run ... -P -d`,
//! `inspect`, `logs -f`, `stop`, `start`, `rm -f -v`, `network ls/create/rm`), reads the same
//! fields of `docker inspect`'s JSON (published ports, health status), waits for readiness
//! the same way and removes its containers on drop (unless `TESTCONTAINERS=keep`).
//! Written from the fork's documented behaviour; none of its code is copied.

pub use crate::core::{Container, Image, RunnableImage};

/// Docker clients.
pub mod clients {
    pub use self::cli::Cli;

    /// The client that drives the `docker` binary.
    pub mod cli {
        use std::collections::HashMap;
        use std::ffi::OsString;
        use std::process::{Command, Stdio};
        use std::sync::{Arc, Mutex};
        use std::thread::sleep;
        use std::time::{Duration, Instant};

        use crate::core::{Container, Image, LogStream, RunnableImage, WaitFor};

        /// Runs containers through the `docker` (or `podman`) command line.
        #[derive(Debug)]
        pub struct Cli {
            inner: Arc<Client>,
        }

        #[derive(Debug)]
        pub(crate) struct Client {
            binary: OsString,
            keep: bool,
            started: Mutex<HashMap<String, Instant>>,
            created_networks: Mutex<Vec<String>>,
        }

        impl Default for Cli {
            fn default() -> Self {
                Self::docker()
            }
        }

        impl Cli {
            /// A client using the `docker` binary found on `PATH`.
            pub fn docker() -> Self {
                Self::new("docker")
            }

            /// A client using the `podman` binary found on `PATH`.
            pub fn podman() -> Self {
                Self::new("podman")
            }

            fn new(binary: &str) -> Self {
                let keep = match std::env::var("TESTCONTAINERS").as_deref() {
                    Ok("keep") => true,
                    Ok("remove") | Err(_) => false,
                    Ok(other) => {
                        panic!("unknown command '{other}' provided via TESTCONTAINERS env variable")
                    }
                };
                Self {
                    inner: Arc::new(Client {
                        binary: binary.into(),
                        keep,
                        started: Mutex::default(),
                        created_networks: Mutex::default(),
                    }),
                }
            }

            /// Starts a container of `image` (`docker run -d`), waits until its ready
            /// conditions hold and returns it.
            pub fn run<I: Image>(&self, image: impl Into<RunnableImage<I>>) -> Container<'_, I> {
                let image = image.into();
                if let Some(network) = image.network() {
                    if self.inner.create_network_if_not_exists(network) {
                        self.inner
                            .created_networks
                            .lock()
                            .unwrap()
                            .push(network.clone());
                    }
                }
                let mut command = self.inner.build_run_command(&image);
                log::debug!("Executing command: {command:?}");
                let output = command.output().expect("Failed to execute docker command");
                assert!(
                    output.status.success(),
                    "failed to start container: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                let id = String::from_utf8(output.stdout)
                    .expect("output is not valid utf8")
                    .trim()
                    .to_string();
                self.inner
                    .started
                    .lock()
                    .unwrap()
                    .insert(id.clone(), Instant::now());
                self.inner.block_until_ready(&id, image.ready_conditions());
                let ports = self.inner.ports(&id);
                Container::new(id, self.inner.clone(), image, ports, self.inner.keep)
            }
        }

        impl Client {
            fn command(&self) -> Command {
                Command::new(&self.binary)
            }

            fn build_run_command<I: Image>(&self, image: &RunnableImage<I>) -> Command {
                let mut command = self.command();
                command.arg("run");
                if let Some(network) = image.network() {
                    command.arg(format!("--network={network}"));
                }
                if let Some(name) = image.container_name() {
                    command.arg(format!("--name={name}"));
                }
                for (key, value) in image.env_vars() {
                    command.arg("-e").arg(format!("{key}={value}"));
                }
                for (source, dest) in image.volumes() {
                    command.arg("-v").arg(format!("{source}:{dest}"));
                }
                if let Some(entrypoint) = image.entrypoint() {
                    command.arg("--entrypoint").arg(entrypoint);
                }
                if let Some(check) = image.healthcheck() {
                    if let Some(cmd) = &check.cmd {
                        command.arg("--health-cmd").arg(cmd.join(" "));
                    }
                    let seconds = |d: Duration| format!("{}s", d.as_secs());
                    if let Some(interval) = check.interval {
                        command.arg("--health-interval").arg(seconds(interval));
                    }
                    if let Some(timeout) = check.timeout {
                        command.arg("--health-timeout").arg(seconds(timeout));
                    }
                    if let Some(start_period) = check.start_period {
                        command
                            .arg("--health-start-period")
                            .arg(seconds(start_period));
                    }
                    if let Some(retries) = check.retries {
                        command.arg("--health-retries").arg(retries.to_string());
                    }
                }
                let container_networked = image
                    .network()
                    .as_deref()
                    .is_some_and(|n| n.starts_with("container:"));
                if let Some(ports) = image.ports() {
                    for port in ports {
                        command
                            .arg("-p")
                            .arg(format!("{}:{}", port.local, port.internal));
                    }
                } else if !container_networked {
                    for port in image.expose_ports() {
                        command.arg(format!("--expose={port}"));
                    }
                    command.arg("-P");
                }
                command
                    .arg("-d")
                    .arg(image.descriptor())
                    .stdout(Stdio::piped());
                command
            }

            fn network_exists(&self, name: &str) -> bool {
                let output = self
                    .command()
                    .args(["network", "ls", "--format", "{{.Name}}"])
                    .output()
                    .expect("failed to list docker networks");
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .any(|n| n == name)
            }

            fn create_network_if_not_exists(&self, name: &str) -> bool {
                if self.network_exists(name) {
                    return false;
                }
                let output = self
                    .command()
                    .args(["network", "create", name])
                    .output()
                    .expect("failed to create docker network");
                assert!(output.status.success(), "failed to create docker network");
                true
            }

            /// `docker inspect ID`, parsed; `None` for a container docker does not know.
            pub(crate) fn inspect(&self, id: &str) -> serde_json::Value {
                let output = self
                    .command()
                    .arg("inspect")
                    .arg(id)
                    .output()
                    .expect("Failed to execute docker command");
                assert!(
                    output.status.success(),
                    "Failed to inspect docker container"
                );
                let mut infos: Vec<serde_json::Value> =
                    serde_json::from_slice(&output.stdout).expect("docker inspect's JSON");
                assert!(!infos.is_empty(), "docker inspect printed no container");
                infos.swap_remove(0)
            }

            /// Internal port to host port, from `NetworkSettings.Ports` (first binding of
            /// each `PORT/PROTO` key).
            fn ports(&self, id: &str) -> HashMap<u16, u16> {
                let info = self.inspect(id);
                let mut mapping = HashMap::new();
                if let Some(ports) = info["NetworkSettings"]["Ports"].as_object() {
                    for (internal, bindings) in ports {
                        let internal = internal.split('/').next().unwrap_or_default();
                        let Some(host) = bindings
                            .as_array()
                            .and_then(|b| b.first())
                            .and_then(|b| b["HostPort"].as_str())
                        else {
                            continue;
                        };
                        let parse = |port: &str| -> u16 {
                            port.parse().unwrap_or_else(|e| {
                                panic!("Failed to parse {port} as u16 because {e}")
                            })
                        };
                        mapping.insert(parse(internal), parse(host));
                    }
                }
                mapping
            }

            /// The docker CLI may give an empty log stream when asked right after the
            /// container started: wait until a second has passed.
            fn wait_a_second_after_start(&self, id: &str) {
                let started = self.started.lock().unwrap().get(id).copied();
                if let Some(elapsed) = started.map(|s| s.elapsed()) {
                    if elapsed < Duration::from_secs(1) {
                        sleep(Duration::from_secs(1) - elapsed);
                    }
                }
            }

            pub(crate) fn stdout_logs(&self, id: &str) -> LogStream {
                self.wait_a_second_after_start(id);
                let child = self
                    .command()
                    .args(["logs", "-f", id])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("Failed to execute docker command");
                LogStream::new(child.stdout.expect("stdout to be captured"))
            }

            pub(crate) fn stderr_logs(&self, id: &str) -> LogStream {
                self.wait_a_second_after_start(id);
                let child = self
                    .command()
                    .args(["logs", "-f", id])
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("Failed to execute docker command");
                LogStream::new(child.stderr.expect("stderr to be captured"))
            }

            pub(crate) fn stop(&self, id: &str) {
                self.command()
                    .args(["stop", id])
                    .stdout(Stdio::piped())
                    .output()
                    .expect("Failed to stop docker container");
            }

            pub(crate) fn start(&self, id: &str) {
                self.command()
                    .args(["start", id])
                    .stdout(Stdio::piped())
                    .output()
                    .expect("Failed to start docker container");
            }

            pub(crate) fn rm(&self, id: &str) {
                let output = self
                    .command()
                    .args(["rm", "-f", "-v", id])
                    .output()
                    .expect("Failed to execute docker command");
                let message = "Failed to remove docker container";
                assert!(output.status.success(), "{message}");
                assert!(
                    String::from_utf8_lossy(&output.stdout).contains(id),
                    "{message}"
                );
            }

            fn block_until_ready(&self, id: &str, conditions: Vec<WaitFor>) {
                log::debug!("Waiting for container {id} to be ready");
                for condition in conditions {
                    match condition {
                        WaitFor::StdOutMessage { message } => {
                            self.stdout_logs(id).wait_for_message(&message).unwrap()
                        }
                        WaitFor::StdErrMessage { message } => {
                            self.stderr_logs(id).wait_for_message(&message).unwrap()
                        }
                        WaitFor::Duration { length } => sleep(length),
                        WaitFor::Healthcheck => loop {
                            let info = self.inspect(id);
                            let state = &info["State"];
                            assert!(state.is_object(), "Container state not available");
                            let health = &state["Health"];
                            assert!(health.is_object(), "Health state not available");
                            match health["Status"].as_str() {
                                Some("healthy") => break,
                                Some("starting") => sleep(Duration::from_millis(100)),
                                Some("unhealthy") => panic!("Healthcheck reports unhealthy"),
                                _ => panic!("Healthcheck not configured for container"),
                            }
                        },
                        WaitFor::Nothing => {}
                    }
                }
                log::debug!("Container {id} is now ready!");
            }
        }

        impl Drop for Client {
            fn drop(&mut self) {
                let networks = self.created_networks.lock().unwrap();
                if networks.is_empty() {
                    return;
                }
                if self.keep {
                    log::warn!(
                        "networks '{}' will not be automatically removed due to \
                         `TESTCONTAINERS` command",
                        networks.join(",")
                    );
                    return;
                }
                let output = self
                    .command()
                    .args(["network", "rm"])
                    .args(networks.iter())
                    .output()
                    .expect("failed to delete docker networks");
                assert!(
                    output.status.success(),
                    "failed to delete docker networks: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
}

/// Images, containers and what they wait for.
pub mod core {
    use std::collections::{BTreeMap, HashMap};
    use std::fmt;
    use std::io::{self, BufRead, BufReader, Read};
    use std::marker::PhantomData;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::clients::cli::Client;

    /// A docker health check (`--health-*` options of `docker run`).
    #[derive(Clone, Default, Debug)]
    pub struct Healthcheck {
        pub(crate) cmd: Option<Vec<String>>,
        pub(crate) interval: Option<Duration>,
        pub(crate) timeout: Option<Duration>,
        pub(crate) start_period: Option<Duration>,
        pub(crate) retries: Option<usize>,
    }

    impl Healthcheck {
        fn check_duration(name: &str, duration: Duration) {
            assert!(
                duration.as_secs() > 0,
                "health check {name} must greater than 0s"
            );
        }

        /// The command, run in the container (`--health-cmd`, joined with spaces).
        pub fn with_cmd<Iter, Item>(self, cmd: Iter) -> Self
        where
            Item: ToString,
            Iter: Iterator<Item = Item>,
        {
            let cmd: Vec<String> = cmd.map(|s| s.to_string()).collect();
            assert!(!cmd.is_empty(), "health check command must not be empty");
            Self {
                cmd: Some(cmd),
                ..self
            }
        }

        /// `--health-interval` (whole seconds).
        pub fn with_interval(self, interval: Duration) -> Self {
            Self::check_duration("interval", interval);
            Self {
                interval: Some(interval),
                ..self
            }
        }

        /// `--health-timeout` (whole seconds).
        pub fn with_timeout(self, timeout: Duration) -> Self {
            Self::check_duration("timeout", timeout);
            Self {
                timeout: Some(timeout),
                ..self
            }
        }

        /// `--health-start-period` (whole seconds).
        pub fn with_start_period(self, start_period: Duration) -> Self {
            Self::check_duration("start_period", start_period);
            Self {
                start_period: Some(start_period),
                ..self
            }
        }

        /// `--health-retries`.
        pub fn with_retries(self, retries: usize) -> Self {
            assert!(retries > 0, "retries must greater than 0");
            Self {
                retries: Some(retries),
                ..self
            }
        }
    }

    /// When a started container counts as ready.
    #[derive(Debug, PartialEq, Eq, Clone)]
    pub enum WaitFor {
        /// At once.
        Nothing,
        /// When its stdout has a line containing `message`.
        StdOutMessage {
            /// The text to wait for.
            message: String,
        },
        /// When its stderr has a line containing `message`.
        StdErrMessage {
            /// The text to wait for.
            message: String,
        },
        /// After a fixed time.
        Duration {
            /// How long.
            length: Duration,
        },
        /// When docker reports its health check healthy.
        Healthcheck,
    }

    impl WaitFor {
        /// Waits for `message` on stdout.
        pub fn message_on_stdout<S: Into<String>>(message: S) -> WaitFor {
            WaitFor::StdOutMessage {
                message: message.into(),
            }
        }

        /// Waits for `message` on stderr.
        pub fn message_on_stderr<S: Into<String>>(message: S) -> WaitFor {
            WaitFor::StdErrMessage {
                message: message.into(),
            }
        }

        /// Waits `length` seconds.
        pub fn seconds(length: u64) -> WaitFor {
            WaitFor::Duration {
                length: Duration::from_secs(length),
            }
        }

        /// Waits `length` milliseconds.
        pub fn millis(length: u64) -> WaitFor {
            WaitFor::Duration {
                length: Duration::from_millis(length),
            }
        }
    }

    /// A docker image and how to run it.
    pub trait Image: Sized {
        /// The image's name.
        fn name(&self) -> String;
        /// The image's tag.
        fn tag(&self) -> String;
        /// When a started container is ready.
        fn ready_conditions(&self) -> Vec<WaitFor>;
        /// Environment variables (`-e`).
        fn env_vars(&self) -> Box<dyn Iterator<Item = (&String, &String)> + '_> {
            Box::new(std::iter::empty())
        }
        /// Volumes, host path to container path (`-v`).
        fn volumes(&self) -> Box<dyn Iterator<Item = (&String, &String)> + '_> {
            Box::new(std::iter::empty())
        }
        /// `--entrypoint`.
        fn entrypoint(&self) -> Option<String> {
            None
        }
        /// The health check, if any.
        fn healthcheck(&self) -> Option<Healthcheck> {
            None
        }
        /// Ports to expose besides the image's own (`--expose`).
        fn expose_ports(&self) -> Vec<u16> {
            Vec::new()
        }
    }

    /// A host port bound to a container port (`-p LOCAL:INTERNAL`).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Port {
        /// The host's port.
        pub local: u16,
        /// The container's port.
        pub internal: u16,
    }

    impl From<(u16, u16)> for Port {
        fn from((local, internal): (u16, u16)) -> Self {
            Port { local, internal }
        }
    }

    /// An image with the options of one `docker run`.
    #[must_use]
    #[derive(Debug)]
    pub struct RunnableImage<I: Image> {
        image: I,
        image_tag: Option<String>,
        container_name: Option<String>,
        healthcheck: Option<Healthcheck>,
        network: Option<String>,
        env_vars: BTreeMap<String, String>,
        volumes: BTreeMap<String, String>,
        ports: Option<Vec<Port>>,
    }

    impl<I: Image> RunnableImage<I> {
        /// The image.
        pub fn inner(&self) -> &I {
            &self.image
        }

        /// `--network`.
        pub fn network(&self) -> &Option<String> {
            &self.network
        }

        /// `--name`.
        pub fn container_name(&self) -> &Option<String> {
            &self.container_name
        }

        /// The image's environment variables, then these options'.
        pub fn env_vars(&self) -> Box<dyn Iterator<Item = (&String, &String)> + '_> {
            Box::new(self.image.env_vars().chain(self.env_vars.iter()))
        }

        /// The image's volumes, then these options'.
        pub fn volumes(&self) -> Box<dyn Iterator<Item = (&String, &String)> + '_> {
            Box::new(self.image.volumes().chain(self.volumes.iter()))
        }

        /// Explicit port bindings (`-p`); without them every exposed port is published.
        pub fn ports(&self) -> &Option<Vec<Port>> {
            &self.ports
        }

        /// `--entrypoint`.
        pub fn entrypoint(&self) -> Option<String> {
            self.image.entrypoint()
        }

        /// These options' health check, else the image's.
        pub fn healthcheck(&self) -> Option<Healthcheck> {
            self.healthcheck
                .clone()
                .or_else(|| self.image.healthcheck())
        }

        /// `NAME:TAG`.
        pub fn descriptor(&self) -> String {
            let tag = self.image_tag.clone().unwrap_or_else(|| self.image.tag());
            format!("{}:{tag}", self.image.name())
        }

        /// The image's ready conditions.
        pub fn ready_conditions(&self) -> Vec<WaitFor> {
            self.image.ready_conditions()
        }

        /// The image's extra exposed ports.
        pub fn expose_ports(&self) -> Vec<u16> {
            self.image.expose_ports()
        }

        /// Another tag of the same image.
        pub fn with_tag(self, tag: impl Into<String>) -> Self {
            Self {
                image_tag: Some(tag.into()),
                ..self
            }
        }

        /// `--name`.
        pub fn with_container_name(self, name: impl Into<String>) -> Self {
            Self {
                container_name: Some(name.into()),
                ..self
            }
        }

        /// `--network`.
        pub fn with_network(self, network: impl Into<String>) -> Self {
            Self {
                network: Some(network.into()),
                ..self
            }
        }

        /// One more `-e KEY=VALUE`.
        pub fn with_env_var(
            mut self,
            (key, value): (impl Into<String>, impl Into<String>),
        ) -> Self {
            self.env_vars.insert(key.into(), value.into());
            self
        }

        /// One more `-v SOURCE:DEST`.
        pub fn with_volume(
            mut self,
            (source, dest): (impl Into<String>, impl Into<String>),
        ) -> Self {
            self.volumes.insert(source.into(), dest.into());
            self
        }

        /// One more `-p LOCAL:INTERNAL`.
        pub fn with_mapped_port<P: Into<Port>>(mut self, port: P) -> Self {
            self.ports.get_or_insert_with(Vec::new).push(port.into());
            self
        }

        /// The health check, instead of the image's.
        pub fn with_healthcheck(self, healthcheck: Healthcheck) -> Self {
            Self {
                healthcheck: Some(healthcheck),
                ..self
            }
        }
    }

    impl<I: Image> From<I> for RunnableImage<I> {
        fn from(image: I) -> Self {
            Self {
                image,
                image_tag: None,
                container_name: None,
                healthcheck: None,
                network: None,
                env_vars: BTreeMap::new(),
                volumes: BTreeMap::new(),
                ports: None,
            }
        }
    }

    /// A running container, removed (`docker rm -f -v`) when dropped unless
    /// `TESTCONTAINERS=keep`.
    pub struct Container<'d, I: Image> {
        id: String,
        client: Arc<Client>,
        image: RunnableImage<I>,
        ports: HashMap<u16, u16>,
        keep: bool,
        client_lifetime: PhantomData<&'d ()>,
    }

    impl<I: Image + fmt::Debug> fmt::Debug for Container<'_, I> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Container")
                .field("id", &self.id)
                .field("image", &self.image)
                .finish()
        }
    }

    impl<I: Image> Container<'_, I> {
        pub(crate) fn new(
            id: String,
            client: Arc<Client>,
            image: RunnableImage<I>,
            ports: HashMap<u16, u16>,
            keep: bool,
        ) -> Self {
            Self {
                id,
                client,
                image,
                ports,
                keep,
                client_lifetime: PhantomData,
            }
        }

        /// The container's id.
        pub fn id(&self) -> &str {
            &self.id
        }

        /// The image it runs.
        pub fn image(&self) -> &I {
            self.image.inner()
        }

        /// The host port published for the container's `internal_port` (as read when the
        /// container started).
        pub fn get_host_port(&self, internal_port: u16) -> u16 {
            self.ports.get(&internal_port).copied().unwrap_or_else(|| {
                panic!("container {} does not expose port {internal_port}", self.id)
            })
        }

        /// The same as [`Container::get_host_port`].
        pub fn get_host_port_ipv4(&self, internal_port: u16) -> u16 {
            self.get_host_port(internal_port)
        }

        /// `docker stop`.
        pub fn stop(&self) {
            log::debug!("Stopping docker container {}", self.id);
            self.client.stop(&self.id)
        }

        /// `docker start`.
        pub fn start(&self) {
            self.client.start(&self.id)
        }

        /// `docker rm -f -v`.
        pub fn rm(&self) {
            log::debug!("Deleting docker container {}", self.id);
            self.client.rm(&self.id)
        }

        /// The container's stdout, followed (`docker logs -f`).
        pub fn stdout(&self) -> LogStream {
            self.client.stdout_logs(&self.id)
        }

        /// The container's stderr, followed (`docker logs -f`).
        pub fn stderr(&self) -> LogStream {
            self.client.stderr_logs(&self.id)
        }
    }

    impl<I: Image> Drop for Container<'_, I> {
        fn drop(&mut self) {
            if !self.keep {
                self.rm();
            }
        }
    }

    /// Lines of a container's output.
    pub struct LogStream {
        inner: Box<dyn Read + Send>,
    }

    impl fmt::Debug for LogStream {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("LogStream").finish()
        }
    }

    /// Why [`LogStream::wait_for_message`] gave up.
    #[derive(Debug)]
    pub enum WaitError {
        /// The stream ended first; these are the lines it had.
        EndOfStream(Vec<String>),
        /// Reading failed.
        Io(io::Error),
    }

    impl From<io::Error> for WaitError {
        fn from(e: io::Error) -> Self {
            WaitError::Io(e)
        }
    }

    impl LogStream {
        /// A stream over `stream`'s lines.
        pub fn new(stream: impl Read + Send + 'static) -> Self {
            Self {
                inner: Box::new(stream),
            }
        }

        /// Reads until a line contains `message`.
        pub fn wait_for_message(self, message: &str) -> Result<(), WaitError> {
            let mut lines = Vec::new();
            for line in BufReader::new(self.inner).lines() {
                let line = line?;
                if line.contains(message) {
                    log::info!("Found message after comparing {} lines", lines.len());
                    return Ok(());
                }
                lines.push(line);
            }
            Err(WaitError::EndOfStream(lines))
        }
    }
}

/// Images.
pub mod images {
    /// Any image by name and tag.
    pub mod generic {
        use std::collections::BTreeMap;

        use crate::core::{Healthcheck, Image, WaitFor};

        /// An image given by name and tag, with its options.
        #[must_use]
        #[derive(Debug, Clone, Default)]
        pub struct GenericImage {
            name: String,
            tag: String,
            volumes: BTreeMap<String, String>,
            env_vars: BTreeMap<String, String>,
            wait_for: Vec<WaitFor>,
            entrypoint: Option<String>,
            healthcheck: Option<Healthcheck>,
            exposed_ports: Vec<u16>,
        }

        impl GenericImage {
            /// `name:tag`.
            pub fn new<S: Into<String>>(name: S, tag: S) -> GenericImage {
                Self {
                    name: name.into(),
                    tag: tag.into(),
                    ..Default::default()
                }
            }

            /// One more volume, host path to container path.
            pub fn with_volume<F: Into<String>, D: Into<String>>(
                mut self,
                from: F,
                dest: D,
            ) -> Self {
                self.volumes.insert(from.into(), dest.into());
                self
            }

            /// One more environment variable.
            pub fn with_env_var<K: Into<String>, V: Into<String>>(
                mut self,
                key: K,
                value: V,
            ) -> Self {
                self.env_vars.insert(key.into(), value.into());
                self
            }

            /// One more ready condition.
            pub fn with_wait_for(mut self, wait_for: WaitFor) -> Self {
                self.wait_for.push(wait_for);
                self
            }

            /// `--entrypoint`.
            pub fn with_entrypoint(mut self, entrypoint: &str) -> Self {
                self.entrypoint = Some(entrypoint.to_string());
                self
            }

            /// The health check.
            pub fn with_healthcheck(mut self, healthcheck: Healthcheck) -> Self {
                self.healthcheck = Some(healthcheck);
                self
            }

            /// One more port to expose (`--expose`).
            pub fn with_exposed_port(mut self, port: u16) -> Self {
                self.exposed_ports.push(port);
                self
            }
        }

        impl Image for GenericImage {
            fn name(&self) -> String {
                self.name.clone()
            }

            fn tag(&self) -> String {
                self.tag.clone()
            }

            fn ready_conditions(&self) -> Vec<WaitFor> {
                self.wait_for.clone()
            }

            fn env_vars(&self) -> Box<dyn Iterator<Item = (&String, &String)> + '_> {
                Box::new(self.env_vars.iter())
            }

            fn volumes(&self) -> Box<dyn Iterator<Item = (&String, &String)> + '_> {
                Box::new(self.volumes.iter())
            }

            fn entrypoint(&self) -> Option<String> {
                self.entrypoint.clone()
            }

            fn healthcheck(&self) -> Option<Healthcheck> {
                self.healthcheck.clone()
            }

            fn expose_ports(&self) -> Vec<u16> {
                self.exposed_ports.clone()
            }
        }
    }
}
