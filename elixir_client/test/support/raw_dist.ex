defmodule HordeC.Test.RawDist do
  @moduledoc """
  A tiny raw Erlang distribution client over `:gen_tcp`, for feeding a node hostile input.

  It does what `net_kernel`/`dist_util` do, by hand, so tests can stop or misbehave at any
  step:

    1. epmd `PORT_PLEASE2_REQ` (`port_please/2`);
    2. the OTP 23+ handshake as the initiator (`handshake/2`): `send_name` ('N', 64-bit
       flags, creation), `recv_status`, `recv_challenge` ('N'), `send_challenge_reply`
       ('r' + MD5(cookie ++ challenge)), `recv_challenge_ack` ('a', checked). Handshake
       messages are framed with a 2-byte length;
    3. after that, packets with a 4-byte length (`send_packet/2`, `recv_packet/2`), where a
       message is `<<112, ControlTerm, [Message]>>` (`pass_through/2`) and `<<0:32>>` is a tick.

  Sockets are passive and raw (no `:packet` option): framing is explicit so tests can
  send truncated or bogus frames.
  """

  import Bitwise

  # ei's own flag set (hidden: no PUBLISHED, no atom cache, no fragments) plus
  # DFLAG_DIST_MONITOR_NAME, i.e. what hordec itself advertises.
  @flags 0x407074F9C ||| 0x20

  defstruct [:sock, :name, :peer_name, :peer_flags, :peer_creation, :cookie, :creation]

  @type t :: %__MODULE__{sock: :gen_tcp.socket(), name: node(), cookie: binary()}

  @doc "Asks epmd on 127.0.0.1 for the distribution port of `node` (`name@host`)."
  @spec port_please(node()) :: {:ok, :inet.port_number()} | {:error, term()}
  def port_please(node) do
    [alive, _host] = node |> Atom.to_string() |> String.split("@", parts: 2)

    with {:ok, s} <-
           :gen_tcp.connect(~c"127.0.0.1", 4369, [:binary, active: false, packet: :raw], 2_000) do
      req = <<122, alive::binary>>
      :ok = :gen_tcp.send(s, <<byte_size(req)::16, req::binary>>)

      result =
        case :gen_tcp.recv(s, 2, 2_000) do
          {:ok, <<119, 0>>} ->
            case :gen_tcp.recv(s, 2, 2_000) do
              {:ok, <<port::16>>} -> {:ok, port}
              error -> error
            end

          {:ok, <<119, code>>} ->
            {:error, {:epmd, code}}

          error ->
            error
        end

      :gen_tcp.close(s)
      result
    end
  end

  @doc "Opens a raw TCP connection to `node`'s distribution port (no handshake)."
  @spec open(node()) :: {:ok, :gen_tcp.socket()} | {:error, term()}
  def open(node) do
    with {:ok, port} <- port_please(node) do
      :gen_tcp.connect(
        ~c"127.0.0.1",
        port,
        [:binary, active: false, packet: :raw, nodelay: true],
        2_000
      )
    end
  end

  @doc """
  Connects to `node` and completes the handshake as `name` with `cookie`.

  Returns `{:ok, conn}` or `{:error, {step, reason}}` (the socket is closed then).
  """
  @spec connect(node(), node(), atom() | binary()) :: {:ok, t()} | {:error, term()}
  def connect(node, name, cookie) do
    with {:ok, sock} <- open(node) do
      case handshake(sock, name: name, cookie: cookie) do
        {:ok, conn} ->
          {:ok, conn}

        error ->
          :gen_tcp.close(sock)
          error
      end
    end
  end

  @doc """
  Runs the initiator side of the OTP 23+ handshake on an open socket.

  Options: `:name` (our node name), `:cookie`, `:flags` (default: hordec's),
  `:creation` (default random), `:timeout` per step (default 5 s).
  """
  @spec handshake(:gen_tcp.socket(), keyword()) :: {:ok, t()} | {:error, term()}
  def handshake(sock, opts) do
    name = Keyword.fetch!(opts, :name)
    cookie = opts |> Keyword.fetch!(:cookie) |> to_string()
    flags = Keyword.get(opts, :flags, @flags)
    creation = Keyword.get_lazy(opts, :creation, fn -> :rand.uniform(0xFFFFFFF) + 4 end)
    t = Keyword.get(opts, :timeout, 5_000)
    name_bin = Atom.to_string(name)
    my_challenge = :rand.uniform(0xFFFFFFFF) - 1

    with :ok <-
           step(
             :send_name,
             send_hs(
               sock,
               <<?N, flags::64, creation::32, byte_size(name_bin)::16, name_bin::binary>>
             )
           ),
         {:ok, status} <- step(:recv_status, recv_hs(sock, t)),
         :ok <- check_status(status),
         {:ok, chal} <- step(:recv_challenge, recv_hs(sock, t)),
         {:ok, {peer_flags, challenge, peer_creation, peer_name}} <- parse_challenge(chal),
         :ok <-
           step(
             :send_challenge_reply,
             send_hs(sock, <<?r, my_challenge::32, digest(cookie, challenge)::binary>>)
           ),
         {:ok, ack} <- step(:recv_challenge_ack, recv_hs(sock, t)),
         :ok <- check_ack(ack, digest(cookie, my_challenge)) do
      {:ok,
       %__MODULE__{
         sock: sock,
         name: name,
         cookie: cookie,
         creation: creation,
         peer_name: peer_name,
         peer_flags: peer_flags,
         peer_creation: peer_creation
       }}
    end
  end

  @doc "MD5 challenge digest: `md5(cookie ++ integer_to_list(challenge))`."
  @spec digest(binary(), non_neg_integer()) :: binary()
  def digest(cookie, challenge), do: :crypto.hash(:md5, cookie <> Integer.to_string(challenge))

  @doc "Sends one handshake message with its 2-byte length."
  @spec send_hs(:gen_tcp.socket(), binary()) :: :ok | {:error, term()}
  def send_hs(sock, payload), do: :gen_tcp.send(sock, <<byte_size(payload)::16, payload::binary>>)

  @doc "Receives one handshake message (2-byte length)."
  @spec recv_hs(:gen_tcp.socket(), timeout()) :: {:ok, binary()} | {:error, term()}
  def recv_hs(sock, timeout \\ 5_000) do
    with {:ok, <<len::16>>} <- :gen_tcp.recv(sock, 2, timeout) do
      if len == 0, do: {:ok, ""}, else: :gen_tcp.recv(sock, len, timeout)
    end
  end

  @doc "Sends one post-handshake packet with its 4-byte length."
  @spec send_packet(t() | :gen_tcp.socket(), binary()) :: :ok | {:error, term()}
  def send_packet(%__MODULE__{sock: sock}, payload), do: send_packet(sock, payload)

  def send_packet(sock, payload),
    do: :gen_tcp.send(sock, <<byte_size(payload)::32, payload::binary>>)

  @doc "Sends bytes as they are, with no framing."
  @spec send_raw(t() | :gen_tcp.socket(), iodata()) :: :ok | {:error, term()}
  def send_raw(%__MODULE__{sock: sock}, bytes), do: :gen_tcp.send(sock, bytes)
  def send_raw(sock, bytes), do: :gen_tcp.send(sock, bytes)

  @doc """
  Receives the next non-tick packet and decodes it to `{control, message | :none}`.
  Returns `{:error, :closed}` when the peer closes the connection.
  """
  @spec recv_packet(t(), timeout()) ::
          {:ok, {term(), term()}} | {:ok, {:raw, binary()}} | {:error, term()}
  def recv_packet(%__MODULE__{sock: sock} = conn, timeout \\ 5_000) do
    with {:ok, <<len::32>>} <- :gen_tcp.recv(sock, 4, timeout) do
      if len == 0 do
        recv_packet(conn, timeout)
      else
        with {:ok, data} <- :gen_tcp.recv(sock, len, timeout),
             do: {:ok, decode_pass_through(data)}
      end
    end
  end

  @doc "Builds a pass-through message `<<112, ControlTerm, Message>>` (message optional)."
  @spec pass_through(term(), term()) :: binary()
  def pass_through(control, message \\ :none)
  def pass_through(control, :none), do: <<112, :erlang.term_to_binary(control)::binary>>

  def pass_through(control, message),
    do: <<112, :erlang.term_to_binary(control)::binary, :erlang.term_to_binary(message)::binary>>

  @doc """
  Waits until the other side closes the connection, skipping whatever it sends
  (ticks...). Returns `:closed` or `:timeout`.
  """
  @spec await_close(t() | :gen_tcp.socket(), timeout()) :: :closed | :timeout
  def await_close(%__MODULE__{sock: sock}, timeout), do: await_close(sock, timeout)

  def await_close(sock, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    do_await_close(sock, deadline)
  end

  defp do_await_close(sock, deadline) do
    left = deadline - System.monotonic_time(:millisecond)

    if left <= 0 do
      :timeout
    else
      case :gen_tcp.recv(sock, 0, left) do
        {:ok, _} -> do_await_close(sock, deadline)
        {:error, :timeout} -> :timeout
        {:error, _closed_or_reset} -> :closed
      end
    end
  end

  @doc "Closes the connection."
  @spec close(t() | :gen_tcp.socket()) :: :ok
  def close(%__MODULE__{sock: sock}), do: :gen_tcp.close(sock)
  def close(sock), do: :gen_tcp.close(sock)

  @doc """
  Makes a pid that belongs to the raw client's node (what hordec should reply to), by
  building its external format (NEW_PID_EXT) by hand.
  """
  @spec make_pid(t(), non_neg_integer(), non_neg_integer()) :: pid()
  def make_pid(%__MODULE__{name: name, creation: creation}, id \\ 1, serial \\ 0) do
    name_bin = Atom.to_string(name)

    :erlang.binary_to_term(
      <<131, 88, 119, byte_size(name_bin), name_bin::binary, id::32, serial::32, creation::32>>
    )
  end

  # ---- internals ----------------------------------------------------------------------

  defp step(_step, :ok), do: :ok
  defp step(_step, {:ok, _} = ok), do: ok
  defp step(step, {:error, reason}), do: {:error, {step, reason}}

  defp check_status("sok"), do: :ok
  defp check_status("sok_simultaneous"), do: :ok
  defp check_status(<<?s, status::binary>>), do: {:error, {:status, status}}
  defp check_status(other), do: {:error, {:recv_status, {:unexpected, other}}}

  defp parse_challenge(
         <<?N, flags::64, challenge::32, creation::32, nlen::16, name::binary-size(nlen)>>
       ),
       do: {:ok, {flags, challenge, creation, String.to_atom(name)}}

  defp parse_challenge(<<?n, _version::16, flags::32, challenge::32, name::binary>>),
    do: {:ok, {flags, challenge, nil, String.to_atom(name)}}

  defp parse_challenge(other), do: {:error, {:recv_challenge, {:unexpected, other}}}

  defp check_ack(<<?a, digest::binary-size(16)>>, digest), do: :ok
  defp check_ack(<<?a, _::binary-size(16)>>, _), do: {:error, {:recv_challenge_ack, :bad_digest}}
  defp check_ack(other, _), do: {:error, {:recv_challenge_ack, {:unexpected, other}}}

  defp decode_pass_through(<<112, rest::binary>> = data) do
    try do
      {control, used} = :erlang.binary_to_term(rest, [:used])

      case binary_part(rest, used, byte_size(rest) - used) do
        "" -> {control, :none}
        msg -> {control, :erlang.binary_to_term(msg)}
      end
    rescue
      ArgumentError -> {:raw, data}
    end
  end

  defp decode_pass_through(data), do: {:raw, data}
end
