#!/usr/bin/env bash
# Makes sure the MariaDB the tests use is there: 127.0.0.1:3306, user root, empty password,
# for TCP connections from this machine. The tests create and drop databases of their own.
#   - running already and answering as root without a password: nothing to do;
#   - installed but stopped: started;
#   - missing: Debian's package installed and started, root given an empty password for
#     local connections only (a throwaway test server, never a production one).
set -euo pipefail

sudo=""
if [[ "$(id -u)" -ne 0 ]]; then
  sudo="sudo"
fi

answers() {
  mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -u root --password= -Nse 'SELECT 1' >/dev/null 2>&1
}

if command -v mariadb >/dev/null 2>&1 && answers; then
  echo "setup-mariadb: MariaDB answers at 127.0.0.1:3306"
  exit 0
fi

if ! command -v mariadbd >/dev/null 2>&1 && ! [ -x /usr/sbin/mariadbd ]; then
  echo "setup-mariadb: installing MariaDB (Debian's package)"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client
fi

# Started by its service script where there is one, else in the background by hand (a
# container without an init system).
if ! $sudo service mariadb start >/dev/null 2>&1; then
  $sudo mkdir -p /run/mysqld
  $sudo chown mysql:mysql /run/mysqld
  $sudo sh -c 'nohup mariadbd-safe --user=mysql >/dev/null 2>&1 &'
fi
for _ in $(seq 1 30); do
  $sudo mariadb -u root -Nse 'SELECT 1' >/dev/null 2>&1 && break
  sleep 1
done

if ! answers; then
  echo "setup-mariadb: root gets an empty password for 127.0.0.1 and localhost"
  $sudo mariadb -u root <<'SQL'
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
fi
if answers; then
  echo "setup-mariadb: MariaDB answers at 127.0.0.1:3306"
  exit 0
fi
echo "setup-mariadb: MariaDB does not answer at 127.0.0.1:3306 as root" >&2
exit 1
