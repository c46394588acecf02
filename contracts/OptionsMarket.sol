// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title OptionsMarket — fully collateralised, cash-settled European options for the fixbridge devnet.
/// @notice Self-contained: no imports (the small ReentrancyGuard and the checked ERC-20 calls are here).
///
/// A series is (underlying, strike asset, strike, expiry, call/put). `strike` (and the settlement
/// price) are in strike-asset base units per 1 whole underlying, i.e. per 10^underlyingDecimals
/// base units of underlying: WETH/USDC at 3000 is 3000e6. Each series has its own ERC-20
/// OptionToken with the underlying's decimals: 1 base unit of option = 1 base unit of underlying
/// (contract multiplier 1).
///
/// Collateral, in the asset the option pays in (calls: underlying, puts: strike asset):
///   call: amount                                     put: ceil(amount * K / 10^dec)
/// Payout to holders after settlement at price S, rounded down:
///   call: floor(amount * max(0, S - K) / S)          put: floor(amount * max(0, K - S) / 10^dec)
/// A writer keeps (gets back) their collateral minus what they owe, rounded up against the writer:
///   call: ceil(written * max(0, S - K) / S)          put: ceil(written * max(0, K - S) / 10^dec)
/// so the collateral always covers every payout; the rounding dust stays in the market.

interface IERC20Minimal {
    function balanceOf(address owner) external view returns (uint256);
    function decimals() external view returns (uint8);
}

interface IUniswapV2Router02Minimal {
    function swapExactTokensForTokens(
        uint256 amountIn,
        uint256 amountOutMin,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external returns (uint256[] memory amounts);
}

/// @notice A minimal non-reentrancy lock (one per contract).
abstract contract ReentrancyGuard {
    uint256 private constant _NOT_ENTERED = 1;
    uint256 private constant _ENTERED = 2;
    uint256 private _status = _NOT_ENTERED;

    modifier nonReentrant() {
        require(_status == _NOT_ENTERED, "ReentrancyGuard: reentrant call");
        _status = _ENTERED;
        _;
        _status = _NOT_ENTERED;
    }
}

/// @notice ERC-20 calls that accept tokens returning nothing or `true`, and fail on `false`,
///         on a revert (whose reason is passed on) and on an address without code.
abstract contract SafeTransfer {
    function _safeTransfer(address token, address to, uint256 value) internal {
        _callToken(token, abi.encodeWithSelector(0xa9059cbb, to, value), "SafeTransfer: transfer failed");
    }

    function _safeTransferFrom(address token, address from, address to, uint256 value) internal {
        _callToken(token, abi.encodeWithSelector(0x23b872dd, from, to, value), "SafeTransfer: transferFrom failed");
    }

    function _callToken(address token, bytes memory data, string memory failure) private {
        require(token.code.length > 0, "SafeTransfer: not a contract");
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok) {
            if (ret.length > 0) {
                assembly {
                    revert(add(ret, 32), mload(ret))
                }
            }
            revert(failure);
        }
        if (ret.length > 0) {
            require(ret.length == 32 && abi.decode(ret, (bool)), failure);
        }
    }
}

/// @notice The ERC-20 of one option series. Only its market mints and burns.
contract OptionToken {
    string public name;
    string public symbol;
    uint8 public immutable decimals;
    uint256 public totalSupply;
    /// @notice The OptionsMarket that deployed this token, and the series it stands for.
    address public immutable market;
    uint256 public immutable seriesId;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    modifier onlyMarket() {
        require(msg.sender == market, "OptionToken: caller is not the market");
        _;
    }

    constructor(string memory name_, string memory symbol_, uint8 decimals_, uint256 seriesId_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
        market = msg.sender;
        seriesId = seriesId_;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    /// @dev An allowance of type(uint256).max is infinite and not decreased.
    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "OptionToken: insufficient allowance");
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    function mint(address to, uint256 value) external onlyMarket {
        require(to != address(0), "OptionToken: mint to the zero address");
        totalSupply += value;
        unchecked {
            balanceOf[to] += value; // bounded by totalSupply
        }
        emit Transfer(address(0), to, value);
    }

    function burn(address from, uint256 value) external onlyMarket {
        uint256 bal = balanceOf[from];
        require(bal >= value, "OptionToken: burn amount exceeds balance");
        unchecked {
            balanceOf[from] = bal - value;
            totalSupply -= value; // value <= bal <= totalSupply
        }
        emit Transfer(from, address(0), value);
    }

    function _transfer(address from, address to, uint256 value) internal {
        require(to != address(0), "OptionToken: transfer to the zero address");
        uint256 bal = balanceOf[from];
        require(bal >= value, "OptionToken: transfer amount exceeds balance");
        unchecked {
            balanceOf[from] = bal - value;
            balanceOf[to] += value; // bounded by totalSupply
        }
        emit Transfer(from, to, value);
    }
}

contract OptionsMarket is ReentrancyGuard, SafeTransfer {
    struct Series {
        address underlying;
        address strikeAsset;
        address token; // the series' OptionToken
        uint256 strike; // strike-asset base units per 10^underlyingDecimals underlying
        uint64 expiry; // unix seconds; writing until before, settlement from then on
        bool isCall;
        uint8 underlyingDecimals;
        bool settled;
        uint256 settlementPrice; // same units as strike
        uint256 totalWritten; // option base units ever written
        uint256 totalCollateral; // collateral ever locked
        uint256 collateralHeld; // collateral still in the market for this series
    }

    address public owner;
    address public oracle;

    /// @notice Series ids start at 1; 0 means "none".
    uint256 public seriesCount;
    mapping(uint256 => Series) private _series;
    /// @notice keccak256(underlying, strikeAsset, strike, expiry, isCall) => series id
    mapping(bytes32 => uint256) public seriesIdOfKey;
    /// @notice OptionToken address => series id
    mapping(address => uint256) public seriesIdOfToken;

    /// @notice seriesId => writer => option base units written / collateral locked / released?
    mapping(uint256 => mapping(address => uint256)) public written;
    mapping(uint256 => mapping(address => uint256)) public collateralOf;
    mapping(uint256 => mapping(address => bool)) public released;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event OracleChanged(address indexed previousOracle, address indexed newOracle);
    event SeriesCreated(
        uint256 indexed seriesId,
        address indexed token,
        address indexed underlying,
        address strikeAsset,
        uint256 strike,
        uint64 expiry,
        bool isCall,
        string symbol
    );
    /// @notice `collateral` is in the collateral asset (calls: underlying, puts: strike asset).
    event Written(uint256 indexed seriesId, address indexed writer, uint256 amount, uint256 collateral);
    /// @notice writeAndSell: `amount` options written and sold through `router` for `proceeds` strike asset.
    event SoldToOpen(
        uint256 indexed seriesId, address indexed writer, address router, uint256 amount, uint256 proceeds
    );
    /// @notice `payoutPerToken`: what one whole option token (10^dec base units) redeems for, rounded down.
    event Settled(uint256 indexed seriesId, uint256 price, uint256 payoutPerToken);
    event Redeemed(uint256 indexed seriesId, address indexed holder, uint256 amount, uint256 payout);
    /// @notice `returned` went back to the writer; `kept` is what the writer owed the holders.
    event CollateralReleased(uint256 indexed seriesId, address indexed writer, uint256 returned, uint256 kept);

    modifier onlyOwner() {
        require(msg.sender == owner, "OptionsMarket: caller is not the owner");
        _;
    }

    constructor(address oracle_) {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
        oracle = oracle_;
        emit OracleChanged(address(0), oracle_);
    }

    // -- administration -------------------------------------------------------

    function transferOwnership(address newOwner) external onlyOwner {
        require(newOwner != address(0), "OptionsMarket: new owner is the zero address");
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function setOracle(address newOracle) external onlyOwner {
        emit OracleChanged(oracle, newOracle);
        oracle = newOracle;
    }

    /// @notice A new series and its OptionToken, named `<label>-<YYYYMMDD>-<strike>-<C|P>` from the
    ///         expiry's UTC date and the strike in whole strike-asset units (e.g. ETH-20261231-3000-C).
    function createSeries(
        address underlying,
        address strikeAsset,
        uint256 strike,
        uint64 expiry,
        bool isCall,
        string calldata underlyingLabel
    ) external onlyOwner returns (uint256 seriesId, address token) {
        require(underlying != strikeAsset, "OptionsMarket: underlying is the strike asset");
        require(underlying.code.length > 0 && strikeAsset.code.length > 0, "OptionsMarket: token is not a contract");
        require(strike > 0, "OptionsMarket: zero strike");
        require(expiry > block.timestamp, "OptionsMarket: expiry in the past");
        require(bytes(underlyingLabel).length > 0, "OptionsMarket: empty label");
        bytes32 key = keccak256(abi.encode(underlying, strikeAsset, strike, expiry, isCall));
        require(seriesIdOfKey[key] == 0, "OptionsMarket: series exists");

        uint8 dec = IERC20Minimal(underlying).decimals();
        require(dec <= 38, "OptionsMarket: too many decimals");
        string memory sym = string.concat(
            underlyingLabel,
            "-",
            _yyyymmdd(expiry),
            "-",
            _decimalString(strike, IERC20Minimal(strikeAsset).decimals()),
            isCall ? "-C" : "-P"
        );

        seriesId = ++seriesCount;
        token = address(new OptionToken(sym, sym, dec, seriesId));
        Series storage s = _series[seriesId];
        s.underlying = underlying;
        s.strikeAsset = strikeAsset;
        s.token = token;
        s.strike = strike;
        s.expiry = expiry;
        s.isCall = isCall;
        s.underlyingDecimals = dec;
        seriesIdOfKey[key] = seriesId;
        seriesIdOfToken[token] = seriesId;
        emit SeriesCreated(seriesId, token, underlying, strikeAsset, strike, expiry, isCall, sym);
    }

    // -- views ----------------------------------------------------------------

    function getSeries(uint256 seriesId) external view returns (Series memory) {
        return _existing(seriesId);
    }

    /// @notice The asset a series is collateralised and paid in (calls: underlying, puts: strike asset).
    function collateralAsset(uint256 seriesId) public view returns (address) {
        Series storage s = _existing(seriesId);
        return s.isCall ? s.underlying : s.strikeAsset;
    }

    /// @notice Collateral that writing `amount` option base units locks (rounded up).
    function collateralFor(uint256 seriesId, uint256 amount) public view returns (uint256) {
        Series storage s = _existing(seriesId);
        return s.isCall ? amount : _mulDivUp(amount, s.strike, 10 ** s.underlyingDecimals);
    }

    /// @notice What redeeming `amount` option base units pays after settlement (rounded down).
    function payoutFor(uint256 seriesId, uint256 amount) public view returns (uint256) {
        Series storage s = _existing(seriesId);
        require(s.settled, "OptionsMarket: not settled");
        (uint256 num, uint256 den) = _intrinsic(s);
        return num == 0 ? 0 : (amount * num) / den;
    }

    /// @notice What a writer of `amount` option base units owes the holders (rounded up).
    function owedFor(uint256 seriesId, uint256 amount) public view returns (uint256) {
        Series storage s = _existing(seriesId);
        require(s.settled, "OptionsMarket: not settled");
        (uint256 num, uint256 den) = _intrinsic(s);
        return num == 0 ? 0 : _mulDivUp(amount, num, den);
    }

    // -- writing ----------------------------------------------------------------

    /// @notice Lock collateral from the caller and mint `amount` option tokens to the caller.
    function write(uint256 seriesId, uint256 amount) external nonReentrant returns (uint256 collateral) {
        Series storage s = _existing(seriesId);
        collateral = _lockCollateral(s, seriesId, amount);
        OptionToken(s.token).mint(msg.sender, amount);
    }

    /// @notice Sell to open in one transaction: lock the caller's collateral, mint `amount` option
    ///         tokens and sell them through a Uniswap V2 Router02 (path [optionToken, strikeAsset]);
    ///         the proceeds (at least `minOut`) go to the caller, the written position is the caller's.
    function writeAndSell(uint256 seriesId, uint256 amount, address router, uint256 minOut, uint256 deadline)
        external
        nonReentrant
        returns (uint256 proceeds)
    {
        Series storage s = _existing(seriesId);
        require(router.code.length > 0, "OptionsMarket: router is not a contract");
        _lockCollateral(s, seriesId, amount);

        address token = s.token;
        address strikeAsset = s.strikeAsset;
        uint256 heldBefore = OptionToken(token).balanceOf(address(this));
        uint256 proceedsBefore = IERC20Minimal(strikeAsset).balanceOf(msg.sender);
        OptionToken(token).mint(address(this), amount);
        OptionToken(token).approve(router, amount);
        address[] memory path = new address[](2);
        path[0] = token;
        path[1] = strikeAsset;
        IUniswapV2Router02Minimal(router).swapExactTokensForTokens(amount, minOut, path, msg.sender, deadline);
        // Measured, not taken from the router's word: every minted option left, the proceeds arrived.
        require(OptionToken(token).balanceOf(address(this)) == heldBefore, "OptionsMarket: router did not take the options");
        OptionToken(token).approve(router, 0);
        proceeds = IERC20Minimal(strikeAsset).balanceOf(msg.sender) - proceedsBefore;
        require(proceeds >= minOut, "OptionsMarket: insufficient proceeds");
        emit SoldToOpen(seriesId, msg.sender, router, amount, proceeds);
    }

    // -- settlement ---------------------------------------------------------------

    /// @notice The oracle fixes the settlement price (strike-asset base units per whole underlying),
    ///         once, at or after expiry.
    function settle(uint256 seriesId, uint256 price) external {
        require(msg.sender == oracle, "OptionsMarket: caller is not the oracle");
        Series storage s = _existing(seriesId);
        require(block.timestamp >= s.expiry, "OptionsMarket: not expired");
        require(!s.settled, "OptionsMarket: already settled");
        require(price > 0, "OptionsMarket: zero price");
        s.settled = true;
        s.settlementPrice = price;
        (uint256 num, uint256 den) = _intrinsic(s);
        uint256 perToken = num == 0 ? 0 : (10 ** s.underlyingDecimals * num) / den;
        emit Settled(seriesId, price, perToken);
    }

    /// @notice Burn `amount` of the caller's option tokens for their payout in the collateral asset.
    function redeem(uint256 seriesId, uint256 amount) external nonReentrant returns (uint256 payout) {
        Series storage s = _existing(seriesId);
        require(s.settled, "OptionsMarket: not settled");
        require(amount > 0, "OptionsMarket: zero amount");
        (uint256 num, uint256 den) = _intrinsic(s);
        payout = num == 0 ? 0 : (amount * num) / den;
        OptionToken(s.token).burn(msg.sender, amount); // reverts if the caller does not hold them
        s.collateralHeld -= payout; // never pays out another series' collateral
        emit Redeemed(seriesId, msg.sender, amount, payout);
        if (payout > 0) _safeTransfer(s.isCall ? s.underlying : s.strikeAsset, msg.sender, payout);
    }

    /// @notice Once per writer after settlement: the collateral back, minus what the writer owes.
    function releaseCollateral(uint256 seriesId) external nonReentrant returns (uint256 returned) {
        Series storage s = _existing(seriesId);
        require(s.settled, "OptionsMarket: not settled");
        uint256 w = written[seriesId][msg.sender];
        require(w > 0, "OptionsMarket: nothing written");
        require(!released[seriesId][msg.sender], "OptionsMarket: already released");
        released[seriesId][msg.sender] = true;
        (uint256 num, uint256 den) = _intrinsic(s);
        uint256 owed = num == 0 ? 0 : _mulDivUp(w, num, den);
        returned = collateralOf[seriesId][msg.sender] - owed; // collateral >= owed by construction
        s.collateralHeld -= returned;
        emit CollateralReleased(seriesId, msg.sender, returned, owed);
        if (returned > 0) _safeTransfer(s.isCall ? s.underlying : s.strikeAsset, msg.sender, returned);
    }

    // -- internals ----------------------------------------------------------------

    function _existing(uint256 seriesId) private view returns (Series storage s) {
        s = _series[seriesId];
        require(s.token != address(0), "OptionsMarket: unknown series");
    }

    /// @dev Effects first, then the pull; the pull must deliver exactly `collateral`.
    function _lockCollateral(Series storage s, uint256 seriesId, uint256 amount) private returns (uint256 collateral) {
        require(amount > 0, "OptionsMarket: zero amount");
        require(block.timestamp < s.expiry, "OptionsMarket: expired");
        collateral = s.isCall ? amount : _mulDivUp(amount, s.strike, 10 ** s.underlyingDecimals);
        written[seriesId][msg.sender] += amount;
        collateralOf[seriesId][msg.sender] += collateral;
        s.totalWritten += amount;
        s.totalCollateral += collateral;
        s.collateralHeld += collateral;
        emit Written(seriesId, msg.sender, amount, collateral);

        address asset = s.isCall ? s.underlying : s.strikeAsset;
        uint256 before = IERC20Minimal(asset).balanceOf(address(this));
        _safeTransferFrom(asset, msg.sender, address(this), collateral);
        require(
            IERC20Minimal(asset).balanceOf(address(this)) - before == collateral,
            "OptionsMarket: collateral transfer short"
        );
    }

    /// @dev Payout per underlying base unit as num/den: call (S-K)/S, put (K-S)/10^dec; 0/1 if out of the money.
    function _intrinsic(Series storage s) private view returns (uint256 num, uint256 den) {
        uint256 price = s.settlementPrice;
        uint256 strike = s.strike;
        if (s.isCall) return price > strike ? (price - strike, price) : (0, 1);
        return strike > price ? (strike - price, 10 ** s.underlyingDecimals) : (0, 1);
    }

    function _mulDivUp(uint256 a, uint256 b, uint256 d) private pure returns (uint256) {
        uint256 q = (a * b) / d;
        return mulmod(a, b, d) > 0 ? q + 1 : q;
    }

    /// @dev "20261231" for a unix time on 2026-12-31 (UTC); civil-from-days (H. Hinnant).
    function _yyyymmdd(uint256 timestamp) private pure returns (string memory) {
        int256 z = int256(timestamp / 86400) + 719468;
        int256 era = z / 146097;
        int256 doe = z - era * 146097;
        int256 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int256 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int256 mp = (5 * doy + 2) / 153;
        int256 day = doy - (153 * mp + 2) / 5 + 1;
        int256 month = mp < 10 ? mp + 3 : mp - 9;
        int256 year = yoe + era * 400 + (month <= 2 ? int256(1) : int256(0));
        return string.concat(
            _uintString(uint256(year)), _pad2(uint256(month)), _pad2(uint256(day))
        );
    }

    function _pad2(uint256 v) private pure returns (string memory) {
        return v < 10 ? string.concat("0", _uintString(v)) : _uintString(v);
    }

    /// @dev `value` with `decimals` decimals, trailing zeros dropped: 3000500000 (6) -> "3000.5".
    function _decimalString(uint256 value, uint8 decimals) private pure returns (string memory) {
        uint256 unit = 10 ** decimals;
        string memory whole = _uintString(value / unit);
        uint256 frac = value % unit;
        if (frac == 0) return whole;
        uint256 digits = decimals;
        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        bytes memory f = bytes(_uintString(frac));
        bytes memory padded = new bytes(digits);
        uint256 lead = digits - f.length;
        for (uint256 i = 0; i < digits; i++) padded[i] = i < lead ? bytes1("0") : f[i - lead];
        return string.concat(whole, ".", string(padded));
    }

    function _uintString(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        uint256 len;
        for (uint256 t = v; t != 0; t /= 10) len++;
        bytes memory b = new bytes(len);
        while (v != 0) {
            b[--len] = bytes1(uint8(48 + (v % 10)));
            v /= 10;
        }
        return string(b);
    }
}
